from bzzz_console.cli.main import main

main()
