"""The Qt-free engine: model, data, statistics, clipping, quantization, evaluation.

Nothing in this package imports Qt, pyqtgraph or ``q8studio.gui``; a test checks it.
"""
