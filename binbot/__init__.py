"""The `binbot` console command: one entry point for every part of the product."""
