from dnnprof.host.cli import main

main()
