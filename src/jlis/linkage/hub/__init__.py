"""The linkage hub (コアシステム) and J-LIS's code-generation side: members, 機関別符号, acquisition."""
