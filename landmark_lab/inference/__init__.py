"""Using a trained model: the Predictor API, face detectors, the exported network, dlib's peer predictor."""
