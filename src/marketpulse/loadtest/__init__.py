"""The end-to-end load harness behind ``marketpulse bench e2e`` (issue #8).

A load generator (the Kite emulator, or the simulator inside ingest) offers a fixed tick rate
to the service running as one OS process per role; WebSocket clients in their own processes
measure what reaches them. :func:`marketpulse.loadtest.runner.run_scenario` runs one
:class:`~marketpulse.loadtest.scenario.Scenario` and returns a
:class:`~marketpulse.loadtest.report.RunReport`.
"""
