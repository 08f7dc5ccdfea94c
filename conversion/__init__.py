"""Keras model -> verified, quantized TensorFlow.js graph model (built in issue 3)."""
