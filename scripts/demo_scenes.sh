# The demo's synthetic scenes (sourced by scripts/demo.sh and scripts/engine_stages_study.sh):
# simpler than data/synth.h's full mix, for a model of a few CPU minutes: 256x192 (the tiny model's
# input size), 3-5 objects with a radius of 18-45 % of the short side, 60 % of them with parts,
# mostly plain textures, little noise; a domain of 3 object kinds (--kinds: every object an
# instance of one of 3 kinds with its own size, rotation and position, shared by the training set
# and the engine's images; docs/ENGINE.md has the runs with 8 kinds and with new objects in every
# scene).
synth=(--size 256x192 --min-objects 3 --max-objects 5 --size-min 0.18 --size-max 0.45
       --part-prob 0.6 --min-area 200 --pattern-prob 0.2 --outline-prob 0.2 --hole-prob 0.1
       --ground-prob 0.2 --noise 2 --blur-prob 0.3 --kinds 3
       ${DEMO_SCENE_FLAGS:-})
