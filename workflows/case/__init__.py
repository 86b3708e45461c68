"""The case: one durable workflow per after-sales case, and everything it is made of.

Where to find each thing (docs/architecture.md has the map and "How to add an action"):

- `vocabulary.py`: every enumeration (stages, statuses, kinds, channels, ...);
- `lifecycle.py`: the action table (stages, input, roles, label) and the allowed moves;
- `contracts.py`: the dataclasses that cross the workflow boundary, the case state and
  its snapshot; activities and the web import these, never workflow code;
- `workflow.py`: `CaseWorkflow`, the updates (one handler per action) and recording;
- `deadlines.py`: which SLA mark comes next and what fires (pure);
- `clocks.py`: clock arithmetic over a business calendar (pure);
- `sagas.py`: the resolution sagas, a collaborator holding the case state;
- `saga.py`, `priority.py`, `eligibility.py`: the saga runner, intake priority and
  return eligibility (pure);
- `remedies.py`: which remedies one resolution may combine, and what they refund (pure).

This package file imports nothing, so importing the contracts does not load the
workflow.
"""
