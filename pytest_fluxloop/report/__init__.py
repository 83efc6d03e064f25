"""Results a person reads: ``fluxloop parse`` (Markdown per trace), the single-file HTML
report (``fluxloop report``, ``--fluxloop-report``) and ``fluxloop compare``.

Every command reads experiment folders through :class:`pytest_fluxloop.artifacts.reader.
ExperimentFolder`; the run's evaluation figures come from :func:`.figures.run_figures`. No
pytest here.
"""
