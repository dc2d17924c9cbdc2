from aisopod.cli import main

main()
