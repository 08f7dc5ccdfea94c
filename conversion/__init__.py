"""Keras model -> verified, quantized TensorFlow.js graph model."""
