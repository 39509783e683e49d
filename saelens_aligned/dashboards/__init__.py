"""Offline feature dashboards: SAEDashboard's feature pages for any SAE, and a page
comparing SAEs on one hook feature by feature.

- `matching`: pure math over decoder weights and densities (decoder-cosine
  matching, what each SAE has that another lacks, dead and duplicate latents).
- `scripts`: the JavaScript the pages need (d3, Plotly), read from installed
  packages and inlined, so a page opens with no network.
- `activations`: the token sample and the one model pass every SAE reads.
- `feature_pages`: SAEDashboard's runner on a copy of each SAE, its page written
  with every script inlined.
- `comparison_page`: the comparison rendered as one static HTML page.
- `config`: the settings; `build`: the input checks and the order of the steps, as
  `saelens-aligned dashboard` runs them.
"""
