"""HTTP faces: parse → call the engine → render. One module per API family."""
