from aisopod_ratelimit.main import main

main()
