from aisopod_ops.cli import main

main()
