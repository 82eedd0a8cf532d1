"""The version of what the phantom generator produces (no imports: cheap to read from anywhere)."""

# Bump GENERATOR_VERSION with ANY change that alters a generated phantom (image, labels, instances or objects
# table) for an existing preset, seed and option: the sampling of objects, their placement, the imaging chain,
# the physics mode, the presets, the pool's randomisation (pool.py), the order of the random draws. It is part
# of the training pool's cache key (tomoseg.training.data._cache_key), so a bump makes training regenerate its
# phantoms instead of silently reusing cached ones made by the old code. Version 1: the generator the shipped
# default model v3 was trained on (configs/default-model-v3.yaml). Version 2 (review PH4): objects only wholly
# inside the reconstruction circle; this changes only phantoms whose pillar reaches past the circle's edge near an
# object (pillar_radius + 1.41 pillar_offset above about 0.5 - 3.5 / width, e.g. --set pillar_offset=0.25, where
# version 1 labelled voxels of the constant outside the circle). Every preset phantom and every training-pool
# phantom (randomised pillar_radius at most 0.462) is the same as version 1's: checked against version 1 for the
# presets, 120 randomised pools items up to 1024 wide, a physics item and a pair.
GENERATOR_VERSION = 2
