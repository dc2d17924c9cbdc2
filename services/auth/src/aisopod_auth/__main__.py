from aisopod_auth.main import main

main()
