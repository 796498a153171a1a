from quality.cli import main

main()
