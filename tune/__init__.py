"""Hyperparameter sweeps with Ray Tune: ``vaegan-dist tune --space gamma``.

    space.py    a YAML search space, checked against the config before Ray starts
    sweep.py    the driver: resources, scheduler, search, Tuner (or its restore)
    trial.py    one trial: a TorchTrainer in a run directory named after the trial id
    results.py  results.csv, best first, and the command that continues the best trial
    spaces/     ready spaces, one YAML file each (space.ready_spaces lists them)
"""
