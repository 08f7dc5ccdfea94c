from binbot.cli import main

raise SystemExit(main())
