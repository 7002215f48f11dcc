"""KPIs of the conversations (DESIGN.md "KPIs the dashboard and API compute";
docs/kpis.md): read from the rollups that migration 0008's triggers keep as conversations
settle, never by scanning `conversations`.

- `figures`: one period's sums turned into the KPIs (rates, means, money per success).
- `report`: totals, series per day/week/month, dispositions and channel mix of a range.
- `commentary`: the previous period of equal length, the changes, and the words of an LLM
  given as a typed callable (a fallback text when it fails), cached per period.
- `weekly`: the weekly report (JSON, HTML, PDF) and the Monday job that queues its mail.

May import: metering (and third-party libraries).
"""
