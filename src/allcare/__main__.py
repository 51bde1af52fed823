from allcare.cli import main

main()
