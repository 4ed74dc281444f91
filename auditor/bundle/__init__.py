"""Incident bundles: collecting a live host into one archive, and reading bundles,
directories of artifacts and sosreports back as :class:`~auditor.bundle.inputs.Inputs`."""
