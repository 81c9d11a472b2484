import os

# Lava's CPU simulator forks one process per Lava process; torch's threads inside forked children can deadlock.
os.environ.setdefault("OMP_NUM_THREADS", "1")
