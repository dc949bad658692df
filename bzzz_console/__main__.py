from bzzz_console.cli import main

main()
