"""The version of what the phantom generator produces (no imports: cheap to read from anywhere)."""

# Bump GENERATOR_VERSION with ANY change that alters a generated phantom (image, labels, instances or objects
# table) for an existing preset, seed and option: the sampling of objects, their placement, the imaging chain,
# the physics mode, the presets, the pool's randomisation (pool.py), the order of the random draws. It is part
# of the training pool's cache key (tomoseg.training.data._cache_key), so a bump makes training regenerate its
# phantoms instead of silently reusing cached ones made by the old code. Version 1: the generator the shipped
# default model v3 was trained on (configs/default-model-v3.yaml).
GENERATOR_VERSION = 1
