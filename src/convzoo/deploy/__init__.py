"""Deployment: test-time protocols (`tta`), export with a parity check (`export`), compression (`compress`).

Import the submodules directly; each keeps its heavy dependencies (onnx, onnxruntime) to itself.
"""
