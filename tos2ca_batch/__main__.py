from tos2ca_batch.cli import main

raise SystemExit(main())
