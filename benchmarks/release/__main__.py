"""`python -m benchmarks.release build|render`: see `benchmarks.release.build`."""

from benchmarks.release.build import main

main()
