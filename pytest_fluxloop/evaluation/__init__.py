"""Evaluation: what ``evaluation.yaml`` says about each trace and about the run.

* :mod:`.spec` — the plan compiled from every evaluation.yaml layout, checked before a case runs;
* :mod:`.targets` — what a rule or judge reads from a trace (output, input, transcript, turns);
* :mod:`.rules` — the ``rule_based`` checks;
* :mod:`.judge`, :mod:`.judge_prompt`, :mod:`.judge_answer`, :mod:`.judge_cache`,
  :mod:`.budget` — ``llm_judge`` evaluators on the LLM layer: prompt, structured verdict and
  the earlier tool's parsers, cache, call and token budget;
* :mod:`.verdict` — one trace's evaluators aggregated into its verdict and failure message;
* :mod:`.case` — the evaluator of one trace (rules, sampling, judges);
* :mod:`.reliability` — pass@k, pass^k, Wilson interval, flaky groups;
* :mod:`.gates` — run-level gates (``pass^3>=0.8``);
* :mod:`.run_stats` — the run's evaluation block of ``summary.json``;
* :mod:`.offline`, :mod:`.markdown` — ``fluxloop evaluate experiment DIR`` and its report.

No pytest here: the plugin turns verdicts into item outcomes and gates into the exit code.
"""
