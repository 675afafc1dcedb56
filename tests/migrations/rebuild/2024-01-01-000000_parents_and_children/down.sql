DROP TABLE children; DROP TABLE parents;
