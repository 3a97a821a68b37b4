from clickhouse_privatelink.cli import main

raise SystemExit(main())
