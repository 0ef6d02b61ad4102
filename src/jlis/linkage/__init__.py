"""情報提供ネットワークシステム, 自治体中間サーバー and マイナポータル: agency codes, the linkage hub, middle
servers with replicas, the legal exchange table, exchange records and the resident portal."""
