from aisopod_http_api.main import main

main()
