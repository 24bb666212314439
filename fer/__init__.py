"""fer-lab: facial expression recognition on FER2013, from the paper's CNN onwards.

The package is the core: pure functions on numpy arrays and small typed objects. It never
imports streamlit. Heavy dependencies (keras, cv2, dlib) are imported by the modules that need
them, so ``import fer`` stays cheap.
"""

from fer.labels import EMOTIONS, NUM_CLASSES, SPLITS

__all__ = ["EMOTIONS", "NUM_CLASSES", "SPLITS"]
__version__ = "0.1.0"
