"""Prints the mutation score of a cargo-mutants run and fails below the bar.

Usage: python3 tests/mutants_score.py <outcomes.json> [minimum percent]

A mutant is viable when it builds; the score is the share of viable mutants the tests
caught (a timeout counts as caught: the mutant made the tests hang, which they noticed).
Mutants excluded in .cargo/mutants.toml are not generated at all; each exclusion there says
why.
"""

import json
import sys


def main() -> int:
    path = sys.argv[1]
    minimum = float(sys.argv[2]) if len(sys.argv) > 2 else 95.0
    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    caught, missed, timeout, unviable = (
        run["caught"],
        run["missed"],
        run["timeout"],
        run["unviable"],
    )
    viable = caught + missed + timeout
    if viable == 0:
        print("mutants: no viable mutant was tested (did the baseline fail?)")
        return 1
    score = 100.0 * (caught + timeout) / viable
    print(
        f"mutants: {run['total_mutants']} generated, {unviable} unviable; "
        f"{caught + timeout} of {viable} viable caught ({score:.1f}%), {missed} missed"
    )
    for outcome in run["outcomes"]:
        if outcome["summary"] == "MissedMutant":
            print(f"  missed: {outcome['scenario']['Mutant']['name']}")
    if score < minimum:
        print(f"below {minimum:.0f}%: add a test that states the rule each missed mutant breaks")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
