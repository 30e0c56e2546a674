"""Background effects around any generator: subject masks (``masks``: chroma key, person
segmentation, selfie) and the compositing generator (``generator.EffectGenerator``)."""
