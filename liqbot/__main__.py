from liqbot.cli import main

main()
