from dnnprof.agent.cli import main

main()
