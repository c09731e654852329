"""Job execution shared by every stage: tasks with resource requests, run locally or on Slurm."""
