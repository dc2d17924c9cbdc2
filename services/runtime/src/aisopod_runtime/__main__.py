from aisopod_runtime.main import main

main()
