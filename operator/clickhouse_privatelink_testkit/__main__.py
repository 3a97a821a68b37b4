from clickhouse_privatelink_testkit.cli import main

raise SystemExit(main())
