from saelens_aligned.cli import main

main()
