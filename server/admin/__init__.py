"""Administration: the JSON API (``api``) and the console's pages (``console``) are two thin
faces over one service layer (``submissions``, ``versions``, and the job queue and model
registry they share with the rest of the server). Credentials: ``tokens`` (the API's bearer
tokens) and ``sessions`` (the console's login cookie and CSRF check)."""
