"""cron: scheduled agent turns and system events (docs/protocol/methods.md, cron).

`schedule` computes next run times (pure), `store` keeps jobs and run records in KV `cron`,
`scheduler` fires due jobs (exactly one replica per due slot, by compare-and-set on the
job record), `methods` serves cron.*.
"""
