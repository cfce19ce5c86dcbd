from sogs_compressor.cli import main

raise SystemExit(main())
