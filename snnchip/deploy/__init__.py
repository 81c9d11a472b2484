"""deploy/: run exported networks on Loihi through Lava, or on Lava's CPU simulator."""
