"""Pure functions over records: verdicts on the paper's claims (`verdicts/`, its
rules in `verdicts/rules.py`), Pareto fronts and matched-L0 summaries
(`pareto`), seed-to-seed stability math (`stability`) and learning curves as
numbers (`curves`). Nothing here reads files or draws."""
