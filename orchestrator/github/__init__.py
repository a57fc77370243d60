"""The GitHub side: a githubkit façade, trigger confirmation, the tracking comment, publishing.

``client`` holds the only code that talks to the REST API; ``tracking`` renders and finds the
one tracking comment per run; ``publish`` is the plan-step and aggregate-step publishing;
``git_push`` pushes the merged branch without writing the token anywhere; ``actions`` writes
the Actions step outputs and job summary.

Importing this package imports no GitHub client: ``actions`` runs in every job, and githubkit is
the ``github`` extra, which only the jobs that reach GitHub install (``orchestrator/extras.py``).
Import the client from ``orchestrator.github.client``.
"""
