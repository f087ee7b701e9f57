"""The campaigns staff pages, under /campaigns/ in the "campaigns" namespace."""

from django.urls import path

from campaigns import views, views_flows

urlpatterns = [
    path("", views.CampaignListView.as_view(), name="list"),
    path("new/", views.CampaignCreateView.as_view(), name="create"),
    path("audience/", views.AudienceView.as_view(), name="audience"),
    path("<int:pk>/", views.CampaignDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.CampaignEditView.as_view(), name="edit"),
    path("<int:pk>/progress/", views.CampaignProgressView.as_view(), name="progress"),
    path("<int:pk>/send/", views.CampaignSendView.as_view(), name="send"),
    path(
        "<int:pk>/unschedule/",
        views.CampaignUnscheduleView.as_view(),
        name="unschedule",
    ),
    path("<int:pk>/pause/", views.CampaignPauseView.as_view(), name="pause"),
    path("<int:pk>/resume/", views.CampaignResumeView.as_view(), name="resume"),
    path("<int:pk>/cancel/", views.CampaignCancelView.as_view(), name="cancel"),
    path("<int:pk>/test/", views.CampaignTestView.as_view(), name="test"),
    path("templates/", views.TemplateListView.as_view(), name="template_list"),
    path("templates/new/", views.TemplateCreateView.as_view(), name="template_create"),
    path(
        "templates/preview/",
        views.TemplatePreviewView.as_view(),
        name="template_preview",
    ),
    path("templates/frame/", views.TemplateFrameView.as_view(), name="template_frame"),
    path("templates/<int:pk>/", views.TemplateEditView.as_view(), name="template_edit"),
    path("flows/", views_flows.FlowListView.as_view(), name="flow_list"),
    path("flows/<int:pk>/", views_flows.FlowEditView.as_view(), name="flow_edit"),
]
