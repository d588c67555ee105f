"""Shipped motion-model weights (package data; see README.md here). Load them with
``mmtrack_corr.motion_model.load_motion_model("default")``, which checks their sha256 first."""
