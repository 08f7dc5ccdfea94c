"""Retraining: the job queue in the database (``queue``), the worker process that claims
and runs jobs (``worker``), and one retraining from accepted corrections (``retrain``)."""
