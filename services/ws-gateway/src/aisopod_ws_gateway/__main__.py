from aisopod_ws_gateway.main import main

main()
