"""The trainer (python -m trainer.task) and predictor (python -m trainer.predict).

Not built yet: see the trainer issue (3). It reads the dataset folder through pipelines.schema.
"""
