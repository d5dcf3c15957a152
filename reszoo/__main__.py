from reszoo.cli import main

main()
