"""Flask backend: submissions, model versions, retraining (built in issue 4)."""
