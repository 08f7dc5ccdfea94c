"""What phones talk to: the web app's files, the published model, labels with disposal
advice, and the submissions endpoint that collects labelled photos."""
